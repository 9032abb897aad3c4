//! Credentials the gateway holds (provider keys, injected MCP credentials) and their removal
//! from what a client receives. A provider, or an OpenAI-compatible upstream, may echo the
//! request's headers or tools in its answer; the gateway overwrites every occurrence of a held
//! secret in the answer with `*`s of the same length, so lengths and framing stay valid.
//!
//! A [`SecretSet`] is compiled once per plugin (one memmem finder per secret form). A
//! [`Scrubber`] is one response's state: across chunk boundaries it holds back only a tail that
//! is a prefix of a secret, so a stream whose chunks end elsewhere (an SSE event ends with a
//! blank line) is never delayed.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;

/// The byte a secret is overwritten with.
const MASK: u8 = b'*';

/// The secrets of one plugin, ready to search for.
pub struct SecretSet {
    finders: Vec<Finder<'static>>,
}

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_struct("SecretSet").field("forms", &self.finders.len()).finish()
    }
}

impl SecretSet {
    /// The set for these credential values (header values such as `Bearer sk-…`, query or
    /// body parameter values). Each is searched for as the token after an auth scheme (which
    /// also covers the whole value) and as a JSON string would spell it.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> SecretSet {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for value in values {
            for form in secret_forms(value) {
                if !form.is_empty() && !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        SecretSet { finders: forms.iter().map(|f| Finder::new(f).into_owned()).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    fn needles(&self) -> impl Iterator<Item = &[u8]> {
        self.finders.iter().map(Finder::needle)
    }
}

/// What is searched for: the credential without its auth scheme (`Bearer x` → `x`), and that
/// token as a JSON string writes it (escaped quotes, backslashes and control bytes, and `\/`).
fn secret_forms(value: &str) -> Vec<Vec<u8>> {
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+".contains(&b)) =>
        {
            match rest.trim() {
                "" => value,
                t => t,
            }
        }
        _ => value,
    };
    let mut forms = vec![token.as_bytes().to_vec()];
    let json = serde_json::to_string(token).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or("");
    if json != token {
        forms.push(json.as_bytes().to_vec());
    }
    if json.contains('/') {
        forms.push(json.replace('/', "\\/").into_bytes());
    }
    forms
}

/// One response's scrubbing state: the secret sets that apply and the held-back tail.
pub struct Scrubber {
    sets: [Option<Arc<SecretSet>>; 2],
    /// The held-back tail as received, to match against with what follows ...
    held: Vec<u8>,
    /// ... and as it will be sent (parts of it may already be masked).
    held_masked: Vec<u8>,
}

impl Scrubber {
    /// A scrubber for the non-empty sets among these; `None` when there is nothing to scrub.
    pub fn new(sets: [Option<Arc<SecretSet>>; 2]) -> Option<Scrubber> {
        let sets = sets.map(|s| s.filter(|s| !s.is_empty()));
        if sets.iter().all(Option::is_none) {
            return None;
        }
        Some(Scrubber { sets, held: Vec::new(), held_masked: Vec::new() })
    }

    fn finders(&self) -> impl Iterator<Item = &Finder<'static>> {
        self.sets.iter().flatten().flat_map(|s| s.finders.iter())
    }

    /// Scrub the next chunk of the answer in place. `body` becomes what may go to the client now
    /// (possibly empty); the end of the stream releases whatever was held back.
    pub fn apply(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        let incoming = body.take().unwrap_or_default();
        // What is matched (as received) and what is sent (masked so far).
        let (seen, mut out): (Bytes, Option<BytesMut>) = if self.held.is_empty() {
            (incoming, None)
        } else {
            let mut seen = std::mem::take(&mut self.held);
            seen.extend_from_slice(&incoming);
            let mut out = BytesMut::with_capacity(seen.len());
            out.extend_from_slice(&self.held_masked);
            out.extend_from_slice(&incoming);
            self.held_masked.clear();
            (Bytes::from(seen), Some(out))
        };
        for finder in self.finders() {
            let len = finder.needle().len();
            // Overlapping occurrences too (`aaa` holds `aa` twice).
            let mut from = 0;
            while let Some(at) = finder.find(&seen[from..]).map(|i| from + i) {
                let out = out.get_or_insert_with(|| BytesMut::from(&seen[..]));
                out[at..at + len].fill(MASK);
                from = at + 1;
            }
        }
        let keep = if end_of_stream { 0 } else { self.partial_tail(&seen) };
        let send = seen.len() - keep;
        if keep > 0 {
            self.held.extend_from_slice(&seen[send..]);
            match &out {
                Some(o) => self.held_masked.extend_from_slice(&o[send..]),
                None => self.held_masked.extend_from_slice(&seen[send..]),
            }
        }
        *body = Some(match out {
            Some(mut o) => {
                o.truncate(send);
                o.freeze()
            }
            None => seen.slice(..send),
        });
    }

    /// The length of the longest tail of `data` that is the start of a secret but not a whole
    /// one: it may be completed by the next chunk.
    fn partial_tail(&self, data: &[u8]) -> usize {
        let mut keep = 0;
        for needle in self.sets.iter().flatten().flat_map(|s| s.needles()) {
            let longest = (needle.len() - 1).min(data.len());
            if longest <= keep {
                continue;
            }
            let window = &data[data.len() - longest..];
            // Candidate starts are where the needle's first byte occurs; the earliest that
            // matches gives the longest tail.
            for at in memchr::memchr_iter(needle[0], window) {
                let tail = &window[at..];
                if tail.len() <= keep {
                    break;
                }
                if needle.starts_with(tail) {
                    keep = tail.len();
                    break;
                }
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> Arc<SecretSet> {
        Arc::new(SecretSet::new(values.iter().copied()))
    }

    /// Feed `chunks` through a scrubber; the bytes sent after each chunk, in order.
    fn run(sets: [Option<Arc<SecretSet>>; 2], chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = Scrubber::new(sets).unwrap();
        let mut sent = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let mut body = Some(Bytes::copy_from_slice(c));
            s.apply(&mut body, i + 1 == chunks.len());
            sent.push(body.unwrap_or_default().to_vec());
        }
        sent
    }

    /// The reference: every byte covered by an occurrence of any form masked.
    fn reference(data: &[u8], needles: &[&[u8]]) -> Vec<u8> {
        let mut out = data.to_vec();
        for n in needles {
            for at in 0..data.len().saturating_sub(n.len() - 1) {
                if &data[at..at + n.len()] == *n {
                    out[at..at + n.len()].fill(MASK);
                }
            }
        }
        out
    }

    #[test]
    fn forms_drop_the_scheme_and_add_json_spellings() {
        assert_eq!(secret_forms("Bearer sk-abc"), vec![b"sk-abc".to_vec()]);
        assert_eq!(secret_forms("sk-abc"), vec![b"sk-abc".to_vec()]);
        assert_eq!(
            secret_forms("token a\"b/c"),
            vec![b"a\"b/c".to_vec(), b"a\\\"b/c".to_vec(), b"a\\\"b\\/c".to_vec()]
        );
        assert!(SecretSet::new([""]).is_empty());
        assert!(Scrubber::new([Some(set(&[""])), None]).is_none());
        assert!(!format!("{:?}", set(&["Bearer sk-abc"])).contains("sk-abc"));
    }

    #[test]
    fn a_secret_in_one_chunk_is_masked_in_place() {
        let out = run([Some(set(&["Bearer sk-secret-1"])), None], &[b"{\"h\":\"Bearer sk-secret-1\"}"]);
        assert_eq!(out, vec![b"{\"h\":\"Bearer ***********\"}".to_vec()]);
    }

    #[test]
    fn a_split_secret_is_held_back_and_masked_whole() {
        let out = run([Some(set(&["sk-secret-1"])), None], &[b"data: x sk-sec", b"ret-1 y\n\n"]);
        assert_eq!(out[0], b"data: x ");
        assert_eq!(out[1], b"*********** y\n\n");
        // Across three chunks and two sets.
        let out =
            run([Some(set(&["abcdefgh"])), Some(set(&["Bearer PAT-12345"]))], &[b"PAT-1", b"23", b"45 abcd", b"efgh."]);
        assert_eq!(out.concat(), b"********* ********.");
    }

    #[test]
    fn chunks_ending_elsewhere_are_never_delayed() {
        let out = run([Some(set(&["sk-secret-1"])), None], &[b"data: {\"a\":1}\n\n", b"data: {\"b\":2}\n\n"]);
        assert_eq!(out, vec![b"data: {\"a\":1}\n\n".to_vec(), b"data: {\"b\":2}\n\n".to_vec()]);
        // A tail that only looks like a secret's start is held, then released unchanged.
        let out = run([Some(set(&["sk-secret-1"])), None], &[b"ask-s", b"ky"]);
        assert_eq!(out, vec![b"a".to_vec(), b"sk-sky".to_vec()]);
        // The end of the stream releases a held tail.
        let mut s = Scrubber::new([Some(set(&["sk-secret-1"])), None]).unwrap();
        let mut body = Some(Bytes::from_static(b"xx sk-se"));
        s.apply(&mut body, false);
        assert_eq!(body.unwrap(), "xx ");
        let mut end = None;
        s.apply(&mut end, true);
        assert_eq!(end.unwrap(), "sk-se");
    }

    #[test]
    fn unchanged_chunks_are_not_copied() {
        let mut s = Scrubber::new([Some(set(&["sk-secret-1"])), None]).unwrap();
        let chunk = Bytes::from(vec![b'x'; 4096]);
        let mut body = Some(chunk.clone());
        s.apply(&mut body, false);
        assert_eq!(body.unwrap().as_ptr(), chunk.as_ptr());
    }

    /// Random secrets placed at random offsets, the stream split at random points: nothing of
    /// a secret ever leaves, and every other byte is unchanged and in order.
    #[test]
    fn random_placement_and_splits_never_leak_and_never_alter_other_bytes() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        // A small alphabet makes near-misses (shared prefixes) common.
        const ALPHA: &[u8] = b"abcs-k\n\" ";
        for round in 0..20000 {
            let secrets: Vec<String> = (0..1 + next(3))
                .map(|_| {
                    let len = 2 + next(12) as usize;
                    (0..len).map(|_| ALPHA[next(ALPHA.len() as u64) as usize] as char).collect::<String>()
                })
                .map(|s| s.replace([' ', '"', '\n'], "x"))
                .collect();
            let mut data: Vec<u8> = Vec::new();
            for _ in 0..next(6) {
                for _ in 0..next(40) {
                    data.push(ALPHA[next(ALPHA.len() as u64) as usize]);
                }
                data.extend_from_slice(secrets[next(secrets.len() as u64) as usize].as_bytes());
            }
            let mut cuts: Vec<usize> = (0..next(8)).map(|_| next(data.len() as u64 + 1) as usize).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for c in cuts {
                chunks.push(&data[from..c]);
                from = c;
            }
            chunks.push(&data[from..]);
            let (a, b) = secrets.split_at(secrets.len() / 2);
            let sets = [
                Some(set(&a.iter().map(String::as_str).collect::<Vec<_>>())),
                Some(set(&b.iter().map(String::as_str).collect::<Vec<_>>())),
            ];
            let Some(_) = Scrubber::new(sets.clone()) else { continue };
            let sent = run(sets, &chunks).concat();
            let needles: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(
                sent,
                reference(&data, &needles),
                "round {round}: {secrets:?} in {:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}

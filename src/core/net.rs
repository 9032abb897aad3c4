//! Address blocks: Kong's `trusted_ips` (IPs and CIDRs whose forwarding headers are believed).

use std::net::IpAddr;

/// One address or CIDR block, as a masked 128-bit value (IPv4 kept apart from IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    v4: bool,
    net: u128,
    prefix: u8,
}

impl Block {
    fn parse(s: &str) -> Result<Block, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.trim().parse().map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let (v4, bits, max) = match canonical(ip) {
            IpAddr::V4(v) => (true, u128::from(u32::from(v)), 32),
            IpAddr::V6(v) => (false, u128::from(v), 128),
        };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Block { v4, net: bits & mask(prefix, max), prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v) if self.v4 => u128::from(u32::from(v)) & mask(self.prefix, 32) == self.net,
            IpAddr::V6(v) if !self.v4 => u128::from(v) & mask(self.prefix, 128) == self.net,
            _ => false,
        }
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The top `prefix` bits of a `width`-bit value.
fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let ones = u128::MAX << (128 - u32::from(prefix));
    ones >> (128 - u32::from(width))
}

/// A list of addresses and CIDR blocks; `0.0.0.0/0` and `::/0` trust every address of their
/// family. Empty trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpBlocks {
    blocks: Vec<Block>,
}

impl IpBlocks {
    /// Parse every entry; the errors of the bad ones.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<IpBlocks, Vec<String>> {
        let mut blocks = Vec::new();
        let mut bad = Vec::new();
        for e in entries {
            match Block::parse(e.trim()) {
                Ok(b) => blocks.push(b),
                Err(err) => bad.push(err),
            }
        }
        if bad.is_empty() {
            Ok(IpBlocks { blocks })
        } else {
            Err(bad)
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(list: &[&str]) -> IpBlocks {
        IpBlocks::parse(list.iter().copied()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_cidr_blocks() {
        let t = blocks(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]);
        assert!(t.contains(ip("10.255.3.4")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(!t.contains(ip("2001:db9::5")));
        assert!(t.contains(ip("::1")));
        // An IPv4 client on an IPv6 socket is matched as IPv4; families never mix otherwise.
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(!blocks(&["::/0"]).contains(ip("127.0.0.1")));
        assert!(!blocks(&["0.0.0.0/0"]).contains(ip("::2")));
    }

    #[test]
    fn trust_all_and_nothing() {
        let all = blocks(&["0.0.0.0/0", "::/0"]);
        for a in ["1.2.3.4", "127.0.0.1", "::1", "fe80::1"] {
            assert!(all.contains(ip(a)), "{a}");
        }
        let none = IpBlocks::default();
        assert!(none.is_empty() && !none.contains(ip("127.0.0.1")));
        // Host bits in a block are ignored, as nginx's set_real_ip_from does.
        assert!(blocks(&["10.1.2.3/16"]).contains(ip("10.1.200.1")));
        assert!(blocks(&["10.1.2.3/32"]).contains(ip("10.1.2.3")));
        assert!(blocks(&["1.2.3.4/1"]).contains(ip("100.0.0.0")));
        assert!(!blocks(&["1.2.3.4/1"]).contains(ip("200.0.0.0")));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = IpBlocks::parse(["10.0.0.0/33", "example.com", "::/129", "1.2.3.4/x"]).unwrap_err();
        assert_eq!(err.len(), 4);
        assert!(err[0].contains("10.0.0.0/33"), "{err:?}");
        assert!(err[1].contains("example.com"), "{err:?}");
    }
}

//! Keys for unit tests: made once with openssl (ring cannot generate RSA keys), shared by the
//! JOSE, jwt and openid-connect tests.

// Test-only RSA 2048 key pair generated with `openssl genpkey -algorithm RSA` (ring cannot
// generate RSA keys), in a file the integration tests read too. The public key in both PEM
// forms, from `openssl pkey -pubout` and `openssl rsa -RSAPublicKey_out`.
pub const RSA_PRIVATE_PEM: &str = include_str!("../../tests/fixtures/test-rsa-2048.pem");

pub const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwYm5SqeBMYj+Rrirvhiq
DsWGIWaxP3/ou5s+JbtlyRsbKpV/M74aV4p4fFAbYHFhwTZjckXXCKwSoQGbJuxs
NxlGYv5f64ZMJvX+Qb5dhJXORNMR+/BRnAsWSF5v/wrj6oMhV+2FX0r2sn98VIbx
CMyZlU01eMAFzj5Zgn1N6vcUx3aAh/uGz4VrPCf22j0QWI4DZ1414395gDgqmYyz
poQS0HPjAVDs7kwTbzfpOo7ShS59rMt+MNDEFpz203c8e+SWMuJAEsEoj6xsjCiG
ah/jnvVNZNiefjoz13j+q24T0f7DWuVH8EoXZl3p1eEInhnUfmckVBS2IfLqdr1W
lwIDAQAB
-----END PUBLIC KEY-----
";

pub const RSA_PUBLIC_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAwYm5SqeBMYj+RrirvhiqDsWGIWaxP3/ou5s+JbtlyRsbKpV/M74a
V4p4fFAbYHFhwTZjckXXCKwSoQGbJuxsNxlGYv5f64ZMJvX+Qb5dhJXORNMR+/BR
nAsWSF5v/wrj6oMhV+2FX0r2sn98VIbxCMyZlU01eMAFzj5Zgn1N6vcUx3aAh/uG
z4VrPCf22j0QWI4DZ1414395gDgqmYyzpoQS0HPjAVDs7kwTbzfpOo7ShS59rMt+
MNDEFpz203c8e+SWMuJAEsEoj6xsjCiGah/jnvVNZNiefjoz13j+q24T0f7DWuVH
8EoXZl3p1eEInhnUfmckVBS2IfLqdr1WlwIDAQAB
-----END RSA PUBLIC KEY-----
";

// Tokens {"iss":"rsa-key","sub":"openssl"} signed by `openssl dgst -sign` with the key
// above: an independent check of the RSA verification paths.
pub const OPENSSL_RS256: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJyc2Eta2V5Iiwic3ViIjoib3BlbnNzbCJ9.Ac2FdZUBtlXe6U7Puf_9pRsxbX8Dmp64MIuIhZ8kyrI2pCCzsmd2_EiTKq1rGxvfJ3zGCZCnvCfQlFouTS7RLI0-zvC41ZsoMlxFGux1FubvQmOQxqCZD4B655lux1OqbAUASeOXYzRkAryoIQhqhGdAW98rAM_uEpfmT_LSFKrsGU166KAd10DVGTk12NDJE-YsLcJeBhv3JL8pl3XdIqTyqzBGLWlZs0MxZ5kth-qwr3KWdX_eEik7VSfohgxeaphcWY6Gz0KH8BPQfahmHmU_T22OrdOvehK8HXKqc_nJql8P4ukpAL8DSLcJAHm9dpS4yV6ShFLEDdwxMXav_g";
pub const OPENSSL_PS256: &str = "eyJhbGciOiJQUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJyc2Eta2V5Iiwic3ViIjoib3BlbnNzbCJ9.RfFo6DsYons67FfcRKTnQOfC-mkoh9wP44rXzQt9q0NmaMYs_-2A7YkW83mL3scGlqFhrTcfvh9lFJcxp4jvAxO14B9ZduvlWes0LS7eyTIMw0q2OmuXCFCY7pwmGJVsHIXhHI-wABB6dyXKVLpPlr6tCXtDPMMVuVgb_b-huSNb_3Vj3MtcrX_HOWXZMFp0z-tcc-QwwWn_D6O_8UZaly1w0dmYe4hAWwXzCKmPmJ03wOIBypcF2E-Pj5Miju9TEN418ST4gVKPUT97B2bFlOqMKe1OzYpeuG9el1UzNuCGspnC5MCLkL06qsk3P0eWHFnJtKlPq7m44uwtm5ylWQ";

// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024` then `pkey -pubout`.
pub const RSA_1024_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDGlHNzwCM6xufcS9JXCoPbOvbM
FTXrqapCZfkt1+k21wn4Mjd3dlf6x6zaqTgw8XdnT2YwmZtalwIC1a0tsWYqMHXe
zFL1XJsxFxsVjmr2lQglLkvVIgQaMgRlfhfjl6kDGBftxE/HkPyRK3JsvIPdRxKu
7TIec6dyAYlqQbRk+QIDAQAB
-----END PUBLIC KEY-----
";

// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2041` then `pkey -pubout`: a
// modulus of 256 bytes whose top 7 bits are zero, so only its bit length says it is too weak.
pub const RSA_2041_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/test-rsa-2041-public.pem");

// openssl: a P-521 public key, a compressed P-256 point, an RSASSA-PSS key.
pub const P521_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQBdmPrRBUSUmID4uK3MLZpxjlWLWKP
RRSuzrjtWMgsGDO6/WKVCigay0AFkDtChdn097ND82qP+2lhk6lLNbh8CI0AuyOB
1EDoGAryjJVSgsfxLtGhgcqnHObHuPFhuWWpI+njNAYpQtrtftcRms3BX7QLSPzi
ENUT6gD5vFou0xyX2l8=
-----END PUBLIC KEY-----
";
pub const P256_COMPRESSED_PEM: &str = "-----BEGIN PUBLIC KEY-----
MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgACdmZWxF554d7XkrQUexsAphI85Htz
Wi0Gvs//hVW9Fao=
-----END PUBLIC KEY-----
";
pub const P256_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdmZWxF554d7XkrQUexsAphI85Htz
Wi0Gvs//hVW9Fapuf7iCtHuvoUgu1X1dyMpg7pbXcqjhTUtDbtcPqZfaTA==
-----END PUBLIC KEY-----
";

//! Keys for unit tests: made once with openssl (ring cannot generate RSA keys), shared by the
//! JOSE, jwt and openid-connect tests.

// Test-only RSA 2048 key pair generated with `openssl genpkey -algorithm RSA` (ring cannot
// generate RSA keys). The public key in both PEM forms, from `openssl pkey -pubout` and
// `openssl rsa -RSAPublicKey_out`.
pub const RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDBiblKp4ExiP5G
uKu+GKoOxYYhZrE/f+i7mz4lu2XJGxsqlX8zvhpXinh8UBtgcWHBNmNyRdcIrBKh
AZsm7Gw3GUZi/l/rhkwm9f5Bvl2Elc5E0xH78FGcCxZIXm//CuPqgyFX7YVfSvay
f3xUhvEIzJmVTTV4wAXOPlmCfU3q9xTHdoCH+4bPhWs8J/baPRBYjgNnXjXjf3mA
OCqZjLOmhBLQc+MBUOzuTBNvN+k6jtKFLn2sy34w0MQWnPbTdzx75JYy4kASwSiP
rGyMKIZqH+Oe9U1k2J5+OjPXeP6rbhPR/sNa5UfwShdmXenV4QieGdR+ZyRUFLYh
8up2vVaXAgMBAAECggEARjPrgwF8sxeyyLt/DL8MnLwYmfAStmpy5O58nho6YzcS
ZSGCWSYJjxya9Njn/VVTdM8CRra/uBUW0tFu0rEq1de0uP71k00NPYq4tmdTq97d
SgjYOq+jIrvA0vJypKxyHSSAyVDOstDR6NCmrFCgiSUSRt6RWWIqGPRz6ooCZAqn
rkoTe4ZNdE1B9sHsHcDHORonK5r5WDKjruAqJmz/w4I0O9mOYYkD/9bmbHv3orvX
r4t5NJ4cRZiSSrCeVhf4K/jFNiw4CsZy/YbyoZg4YEQ3wrsatVoZFGzQUxvsCrLM
FmOsKyAiA8Y5YMLb1SRa1bSTtcEv9fMqZPEeTQ++qQKBgQDlr/hVeJyXPP10AH+k
bZck8GaY85+00mSTc1aTEAIcZV2MGE/m5xx8pE9hME6E814wp0NskGlyTnkWJP5k
X0IUkBKKKRD4ehBuU/uXlsfpZwsyHvZxCVxPCu3eqCIn8TjPkUBIvI/SjMAFy7p0
TDyAV+qsb9bwRqF8cFYJ0mqHWQKBgQDXtZoom+vjXspXaJYAFE1u21k8B9m9JjDB
TUOIjTTenQ6DxKEScO6aWnFcrbUEQaOQBjaRtzOsCOKxxPDcdbkFkcteUUu5L2uq
Jnob2URmR6//+k70N0s+SOW7GISAhFKwauVAUDQNaYYwvJWdahEU3sieDUWrp3U8
RDECfzP/bwKBgACZa/F1Jhty6kpiMfMQ4iMTiYD+qb0EC4Ui+OfbU9YVIaBa8+Jr
WfStTRO414ubQvSnixJ+cff9Ym1/XTaP1RFOqu23W7b6Qo63I2Hq38ypGytfT09O
MfJ22dYJ5ETsaTSJcXx/GXT4LwwU0wC4rjO7hv46MHpiBMvZUzAlX2fJAoGBAJoS
MivzQodCe0/3ebxQxAX8Uj5YdSNvFb/byfLMuQiQMX/YgBvF4gcJtpK11+dUYtlK
NsvZiOTF6/WBb3Bn/WGHAzU459c7kbEUjn85rmtHpOQ3CxHQNMQmGUCLgIiy+sTb
dSd8odE6oAhLiqnGyrCXd7+8RxkWINyM8FySMretAoGAecElqIydAWcg4KoGyQKu
3zuB2BD3e5T0RDK+HSox4ve77Tn0MtQoBzY2Cv5tLVoW/DS6DuaCs9DOZDfGG4mK
PjvD/pPCRGMbtwQJB3Nzx7Dc42I5Ona+e3l7CAWb2KimJwPP6R5r9Se/0ENqjoC4
XtDSl7Vk64hBtmarVIzFz7I=
-----END PRIVATE KEY-----
";

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

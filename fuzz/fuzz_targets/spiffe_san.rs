//! SPIFFE ID text, and certificates as DER: the URI SAN, the certificate summary, and vetting as the proxy's identity.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_core_fuzz::spiffe_san::run(data));

//! Path normalisation: the properties authorization relies on, checked against an RFC 3986 model.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_core_fuzz::normalize_path::run(data));

//! Bootstrap and snapshot JSON: parsed, validated, round-tripped and applied to a proxy; never a panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_core_fuzz::config_parse::run(data));

//! Client bytes on a loopback connection to a running proxy's HTTP listener, through hyper and the proxy's service.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_core_fuzz::http1_inbound::run(data));

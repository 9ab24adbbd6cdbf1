//! Route tables and requests from structured input: the route table against a model of Gateway API matching.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_core_fuzz::route_match::run(data));

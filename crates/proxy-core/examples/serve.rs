//! Runs the proxy core alone from a JSON file (`{"bootstrap": {...}, "snapshot": {...}}`), for profiling without Python.

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: serve CONFIG.json")?;
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let proxy = proxy_core::Proxy::new(&doc["bootstrap"].to_string())?;
    proxy.apply(&doc["snapshot"].to_string())?;
    for (name, addr) in proxy.start()? {
        eprintln!("{name} {addr}");
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

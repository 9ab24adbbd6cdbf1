//! Tests of metered streams: each byte counted once, each way.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn every_byte_read_and_written_is_counted_once() {
    let (near, mut far) = tokio::io::duplex(256);
    let (read, written) = (Counter::default(), Counter::default());
    let mut metered = Metered::new(near, read.clone(), written.clone());
    metered.write_all(&[7; 100]).await.unwrap();
    let mut sink = vec![0; 100];
    far.read_exact(&mut sink).await.unwrap();
    far.write_all(b"hello").await.unwrap();
    drop(far);
    let mut got = Vec::new();
    metered.read_to_end(&mut got).await.unwrap();
    assert_eq!((read.get(), written.get()), (5, 100));
    assert_eq!(got, b"hello");
}

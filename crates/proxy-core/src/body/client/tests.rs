//! Tests of the client's request body: the stall timer, and client faults found through error sources.

use super::*;

#[tokio::test(start_paused = true)]
async fn stall_expires_only_after_a_whole_limit_without_progress() {
    let mut stall = Stall::new(Duration::from_secs(2));
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(!stall.poll_expired(&mut cx));
    tokio::time::advance(Duration::from_millis(1500)).await;
    assert!(!stall.poll_expired(&mut cx));
    // Progress re-arms from now: 1.5 s more is not enough.
    stall.progressed();
    assert!(!stall.poll_expired(&mut cx));
    tokio::time::advance(Duration::from_millis(1500)).await;
    assert!(!stall.poll_expired(&mut cx));
    tokio::time::advance(Duration::from_millis(600)).await;
    assert!(stall.poll_expired(&mut cx));
}

#[test]
fn client_body_faults_are_found_through_sources() {
    #[derive(Debug)]
    struct Wrapper(BodyError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let stalled = Wrapper(BodyError::Stalled(Duration::from_secs(1)));
    assert_eq!(
        client_body_fault(&stalled),
        Some(ErrorKind::ClientBodyTimeout)
    );
    let other = std::io::Error::other("reset");
    assert_eq!(client_body_fault(&other), None);
}

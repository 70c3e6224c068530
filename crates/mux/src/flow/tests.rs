use super::*;
use proptest::prelude::*;

#[test]
fn send_window_takes_at_most_available_and_caps_growth() {
    let mut w = SendWindow::new(10);
    assert_eq!(w.take(4), 4);
    assert_eq!(w.take(100), 6);
    assert_eq!(w.take(1), 0);
    w.grow(3);
    assert_eq!(w.available(), 3);
    w.grow(u32::MAX);
    assert_eq!(w.available(), MAX_SEND_WINDOW);
}

#[test]
fn recv_window_rejects_overrun() {
    let mut r = RecvWindow::new(16);
    assert!(r.receive(16).is_ok());
    assert_eq!(r.receive(1), Err(FlowViolation));
    assert_eq!(r.buffered(), 16);
}

#[test]
fn small_drained_reads_stay_batched_without_stalling() {
    let mut r = RecvWindow::new(1000);
    r.receive(10).unwrap();
    // Below the threshold: no grant yet, and the peer still has most of its window.
    assert_eq!(r.consume(10), None);
    assert_eq!(r.credit(), 990);
    // Once a quarter of the window is owed it is granted in one WNDINC.
    r.receive(240).unwrap();
    assert_eq!(r.consume(240), Some(250));
    assert_eq!(r.credit(), 1000);
}

#[test]
fn grants_batch_until_quarter_window() {
    let mut r = RecvWindow::new(1000);
    r.receive(1000).unwrap();
    assert_eq!(r.consume(100), None);
    assert_eq!(r.consume(100), None);
    assert_eq!(r.consume(50), Some(250));
    assert_eq!(r.credit(), 250);
}

#[derive(Clone, Debug)]
enum Op {
    /// Application writes this many bytes.
    Write(usize),
    /// The receiver reads this many bytes (WNDINC goes back through the model).
    Read(usize),
}

proptest! {
    /// Sender and receiver accounting wired together: the bytes the sender ever put on the
    /// wire never exceed the initial window plus all WNDINC granted, the receiver never
    /// sees a violation, and its buffer never exceeds the window.
    #[test]
    fn sent_never_exceeds_window_plus_increments(
        window in 1u32..5000,
        ops in proptest::collection::vec(prop_oneof![
            (0usize..3000).prop_map(Op::Write),
            (0usize..3000).prop_map(Op::Read),
        ], 0..200),
    ) {
        let mut send = SendWindow::new(window);
        let mut recv = RecvWindow::new(window);
        let mut sent: u64 = 0;
        let mut granted: u64 = 0;
        for op in ops {
            match op {
                Op::Write(n) => {
                    let k = send.take(n);
                    sent += k as u64;
                    prop_assert!(recv.receive(k).is_ok());
                }
                Op::Read(n) => {
                    let k = n.min(recv.buffered());
                    if let Some(inc) = recv.consume(k) {
                        granted += inc as u64;
                        send.grow(inc);
                    }
                }
            }
            prop_assert!(sent <= window as u64 + granted);
            prop_assert!(recv.buffered() <= window as usize);
            prop_assert_eq!(recv.credit(), send.available());
        }
        // Draining everything leaves less than a quarter window owed, so the sender always has
        // credit again (no stall).
        let rest = recv.buffered();
        if let Some(inc) = recv.consume(rest) { send.grow(inc); }
        let threshold = (window / 4).max(1);
        prop_assert!(send.available() > 0);
        prop_assert!(send.available() + threshold > window);
    }
}

//! The queue of text frames from a track towards one `/signal` session,
//! bounded by frame count and by bytes. A quarter of each bound is kept for
//! the planner's own messages, so a peer flooded with relayed SDP by a
//! neighbour still receives its `AssignParent` and `PeerLeft`.

use axum::extract::ws::Utf8Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a queued frame is, which decides how much of the queue it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `Offer`, `Answer` or `IceCandidate` from another client: may fill
    /// the queue up to three quarters of each bound.
    Relay,
    /// `AssignParent` or `PeerLeft` from the planner: may fill the whole queue.
    Control,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue has no room for this class of frame.
    Full,
    /// The session task has ended.
    Closed,
}

/// The producing side, held by the track. Pushes never wait.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Utf8Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    max_frames: usize,
    max_bytes: usize,
}

/// The consuming side, held by the session task.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Utf8Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

/// A queue holding at most `max_frames` frames (at least 1) and, beyond
/// its first frame, at most `max_bytes` bytes of text.
pub(crate) fn channel(max_frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let max_frames = max_frames.max(1);
    let (tx, rx) = mpsc::channel(max_frames);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox {
        tx,
        queued_bytes: Arc::clone(&queued_bytes),
        max_frames,
        max_bytes,
    };
    (outbox, Inbox { rx, queued_bytes })
}

impl Outbox {
    /// Queues `text` if it fits its class's share: a relayed frame must
    /// leave a quarter of the frames and of the bytes free; a control frame
    /// may take the rest. An empty queue takes any one frame, so a bound
    /// smaller than a single message delays frames but never refuses them all.
    pub fn push(&self, text: Utf8Bytes, class: Class) -> Result<(), PushError> {
        if self.tx.is_closed() {
            return Err(PushError::Closed);
        }
        let (frames, bytes) = match class {
            Class::Relay => (
                self.max_frames - self.max_frames / 4,
                self.max_bytes - self.max_bytes / 4,
            ),
            Class::Control => (self.max_frames, self.max_bytes),
        };
        let queued_frames = self.max_frames - self.tx.capacity();
        if queued_frames >= frames {
            return Err(PushError::Full);
        }
        let len = text.len();
        self.queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q.saturating_add(len) <= bytes).then(|| q.saturating_add(len))
            })
            .map_err(|_| PushError::Full)?;
        self.tx.try_send(text).map_err(|e| {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => PushError::Full,
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
            }
        })
    }
}

impl Inbox {
    /// The next frame; `None` once every [`Outbox`] is gone.
    pub(crate) async fn recv(&mut self) -> Option<Utf8Bytes> {
        let text = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(text.len(), Ordering::AcqRel);
        Some(text)
    }

    /// Discards every queued frame.
    pub(crate) fn clear(&mut self) {
        while let Ok(text) = self.rx.try_recv() {
            self.queued_bytes.fetch_sub(text.len(), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Utf8Bytes {
        "x".repeat(len).into()
    }

    fn drain(inbox: &mut Inbox) -> Vec<usize> {
        std::iter::from_fn(|| inbox.rx.try_recv().ok())
            .map(|t| {
                inbox.queued_bytes.fetch_sub(t.len(), Ordering::AcqRel);
                t.len()
            })
            .collect()
    }

    #[test]
    fn relayed_frames_leave_a_quarter_of_the_frames_for_control() {
        let (out, mut inbox) = channel(8, 1 << 20);
        for _ in 0..6 {
            out.push(frame(1), Class::Relay).unwrap();
        }
        assert_eq!(out.push(frame(1), Class::Relay), Err(PushError::Full));
        out.push(frame(2), Class::Control).unwrap();
        out.push(frame(2), Class::Control).unwrap();
        assert_eq!(out.push(frame(2), Class::Control), Err(PushError::Full));
        assert_eq!(drain(&mut inbox), [1, 1, 1, 1, 1, 1, 2, 2]);
        out.push(frame(1), Class::Relay).unwrap();
    }

    #[test]
    fn relayed_frames_leave_a_quarter_of_the_bytes_for_control() {
        let (out, mut inbox) = channel(100, 400);
        out.push(frame(200), Class::Relay).unwrap();
        out.push(frame(100), Class::Relay).unwrap();
        assert_eq!(out.push(frame(1), Class::Relay), Err(PushError::Full));
        out.push(frame(100), Class::Control).unwrap();
        assert_eq!(out.push(frame(1), Class::Control), Err(PushError::Full));
        assert_eq!(drain(&mut inbox), [200, 100, 100]);
        assert_eq!(inbox.queued_bytes.load(Ordering::Acquire), 0);
        out.push(frame(300), Class::Relay).unwrap();
        inbox.clear();
        assert_eq!(inbox.queued_bytes.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_empty_queue_takes_one_frame_larger_than_the_byte_bound() {
        let (out, mut inbox) = channel(4, 10);
        out.push(frame(50), Class::Relay).unwrap();
        assert_eq!(out.push(frame(1), Class::Control), Err(PushError::Full));
        assert_eq!(drain(&mut inbox), [50]);
        out.push(frame(50), Class::Control).unwrap();
    }

    #[test]
    fn a_closed_queue_says_so_and_keeps_no_bytes() {
        let (out, inbox) = channel(4, 100);
        drop(inbox);
        assert_eq!(out.push(frame(5), Class::Control), Err(PushError::Closed));
        assert_eq!(out.queued_bytes.load(Ordering::Acquire), 0);
    }
}

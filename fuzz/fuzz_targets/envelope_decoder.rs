//! What peers send: the cluster envelope (`Envelope::decode`) and the mesh link framing
//! (`mesh::wire::read_frame`, `HandshakeMsg::decode`), with round trips on what decodes.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wscluster::internals::cluster::envelope::Envelope;
use wscluster::internals::cluster::mesh::wire::{HandshakeMsg, WireFrame, read_frame, write_frames};

/// Largest frame a link accepts in this target.
const MAX_FRAME: usize = 1 << 16;

/// Runs a future that never waits (in-memory readers and writers are always ready).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory I/O is never pending"),
    }
}

fn envelope(bytes: Bytes) {
    if let Ok(e) = Envelope::decode(bytes.clone()) {
        let again = e.encode().expect("a decoded envelope encodes");
        assert_eq!(again, bytes, "encode(decode(x)) != x");
        assert_eq!(
            Envelope::decode(again).as_ref(),
            Ok(&e),
            "decode(encode(e)) != e"
        );
        let head = Envelope::encode_header(e.kind, &e.origin, e.seq).expect("header encodes");
        assert_eq!(head.len() + e.payload.len(), bytes.len());
    }
}

fn handshake(bytes: &[u8]) {
    if let Some(m) = HandshakeMsg::decode(bytes) {
        assert_eq!(
            HandshakeMsg::decode(&m.encode()).as_ref(),
            Some(&m),
            "handshake round trip"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as one frame body (what a link hands on after the length prefix).
    envelope(Bytes::copy_from_slice(data));
    handshake(data);

    // The bytes as a link stream: length-prefixed frames, each an envelope or a handshake message.
    let mut reader: &[u8] = data;
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = ready(read_frame(&mut reader, MAX_FRAME)) {
        assert!(frame.len() <= MAX_FRAME);
        envelope(frame.clone());
        handshake(&frame);
        frames.push(frame);
        if frames.len() > 64 {
            break;
        }
    }
    // Frames read back are written again byte for byte.
    let mut out = Vec::new();
    ready(write_frames(
        &mut out,
        frames.iter().cloned().map(WireFrame::whole),
    ))
    .expect("write");
    let mut again: &[u8] = &out;
    for f in &frames {
        let read = ready(read_frame(&mut again, MAX_FRAME))
            .expect("read")
            .expect("frame");
        assert_eq!(&read, f);
    }
    assert!(
        data.starts_with(&out),
        "re-encoded frames are a prefix of the input"
    );
});

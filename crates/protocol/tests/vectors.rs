//! The DataChannel framing against the golden vectors in
//! docs/vectors/chunking.json, which the browser SDK's tests read too: both
//! implementations frame every case byte for byte as the file says, and
//! reassemble it.

use meshrelay_protocol::{split_into_chunks, Reassembled, Reassembler};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    object_id: String,
    payload_len: usize,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    header: String,
    payload_offset: usize,
    payload_len: usize,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((31 * i + 7) % 256) as u8).collect()
}

#[test]
fn framing_matches_the_golden_vectors_and_reassembles() {
    let text = include_str!("../../../docs/vectors/chunking.json");
    let vectors: Vectors = serde_json::from_str(text).expect("vectors JSON");
    assert!(vectors.cases.len() >= 5);
    for case in &vectors.cases {
        let id: u64 = case.object_id.parse().unwrap();
        let body = payload(case.payload_len);
        let want: Vec<Vec<u8>> = case
            .messages
            .iter()
            .map(|m| {
                let mut msg = hex(&m.header);
                msg.extend_from_slice(&body[m.payload_offset..m.payload_offset + m.payload_len]);
                msg
            })
            .collect();
        let got = split_into_chunks(id, &body).expect("framed");
        assert_eq!(got, want, "{}", case.name);
        let mut r = Reassembler::new(body.len().max(1));
        let mut out = None;
        for m in &got {
            match r.push(m) {
                Reassembled::Object(oid, bytes) => out = Some((oid, bytes)),
                Reassembled::Pending => {}
                Reassembled::Discarded => panic!("{}: discarded", case.name),
            }
        }
        assert_eq!(out, Some((id, body)), "{}", case.name);
    }
}

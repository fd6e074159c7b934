//! The frame decoder on arbitrary bytes: splitting a stream into frames and
//! decoding every message type must never panic, whatever arrives on a
//! socket. Run with `cargo +nightly fuzz run frame_decoder` in `proto/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    while let Ok(Some(payload)) = proto::take_frame(&mut buf) {
        let _ = proto::decode::<proto::Hello>(&payload);
        let _ = proto::decode::<proto::api::Request>(&payload);
        let _ = proto::decode::<proto::api::Response>(&payload);
        let _ = proto::decode::<proto::monitor::Request>(&payload);
        let _ = proto::decode::<proto::monitor::Response>(&payload);
        let _ = proto::decode::<proto::monitor::Ready>(&payload);
    }
    let _ = proto::read_frame::<proto::monitor::Request>(&mut &data[..]);
    let _ = proto::decode::<proto::ExitRecord>(data);
});

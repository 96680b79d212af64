//! The protobuf codec of every plumb.v1 service: prost's, with 1 KiB stream buffers instead
//! of tonic's 8 KiB. A controller holds one long-lived stream per agent, each with a decoding
//! and an encoding buffer; at 10,000 agents the default costs ~160 MiB that sits empty
//! between messages. Buffers still grow to fit a large message (a plan), so agents keep theirs
//! small (`REPORT_BYTES`).

use std::marker::PhantomData;

use tonic::codec::BufferSettings;
use tonic_prost::ProstCodec;

/// Initial size of each stream's buffers.
const BUFFER: usize = 1024;
/// How much is encoded before it is handed to h2, which sends each such chunk as a frame (or
/// several, at the peer's largest frame size). tonic's 32 KiB would batch queued messages into
/// 16 KiB frames, and the peer's read buffer grows to its largest frame and stays so: with
/// messages of about `REPORT_BYTES`, one chunk and one frame stays under 8 KiB.
const YIELD_THRESHOLD: usize = 2 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }
}

//! The codec of every generated service and client (`build.rs` sets it as
//! the codec path): prost's, with smaller starting buffers. tonic's
//! default gives each call an 8 KiB encode buffer and an 8 KiB decode
//! buffer up front; a client session is one long call carrying messages
//! of tens of bytes, so at 10,000 sessions that is 160 MiB reserved for
//! nothing. The buffers start at [`BUFFER_BYTES`] and grow as any
//! `BytesMut` does when a larger message comes (prices in bulk, a large
//! list page), so throughput is unchanged; see docs/BENCHMARKS.md.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The starting size of a call's encode and decode buffers.
pub const BUFFER_BYTES: usize = 1024;
/// How much an encoder batches before it yields to the transport
/// (tonic's default).
const YIELD_BYTES: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_BYTES)
}

/// Prost encoding with [`BUFFER_BYTES`] starting buffers.
#[derive(Debug, Clone)]
pub struct LeanCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}

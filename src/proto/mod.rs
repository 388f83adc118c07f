//! Generated protobuf and gRPC code for `crypto.v1` (see `proto/`), plus the
//! encoded file descriptor set that server reflection serves.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("crypto.v1");

/// Encoded `FileDescriptorSet` of every `crypto.v1` file, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("crypto_descriptor");

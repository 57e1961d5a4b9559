//! Code generated from `proto/ward/v1`: event messages, and gRPC clients and servers.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("ward.v1");

    /// The encoded descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ward_descriptor");
}

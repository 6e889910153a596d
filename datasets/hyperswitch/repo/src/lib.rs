//! Client-side core of the Hyperswitch payments SDK.

pub mod core;

/// The SDK version sent in the `x-sdk-version` header.
pub const SDK_VERSION: &str = "0.1.0";

//! Pieces for driving the Rust OCI client (`oci-client`) in tests.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{IMAGE_LAYER_GZIP_MEDIA_TYPE, OciImageManifest};

use crate::content::Image;

/// A client speaking plain HTTP (loopback).
pub fn http_client() -> oci_client::Client {
    oci_client::Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() })
}

/// What `Client::push` takes for a test image: its layers, config and manifest.
pub struct PushParts {
    /// The layers (gzip media type).
    pub layers: Vec<ImageLayer>,
    /// The config.
    pub config: Config,
    /// The manifest over both.
    pub manifest: OciImageManifest,
}

/// The push parts of `img`.
pub fn push_parts(img: &Image) -> PushParts {
    let layers: Vec<ImageLayer> = img
        .layers
        .iter()
        .map(|l| ImageLayer::new(l.data.clone(), IMAGE_LAYER_GZIP_MEDIA_TYPE.into(), None))
        .collect();
    let config = Config::oci_v1(img.config.data.clone(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);
    PushParts { layers, config, manifest }
}

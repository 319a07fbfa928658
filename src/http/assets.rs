//! The browser client's files, compiled into the binary and served beside the
//! topic routes.

use super::static_files::Asset;

/// The browser client, served by [`App::topics`](crate::App::topics).
pub(crate) const CLIENT_SCRIPTS: &[Asset] = &[
    Asset {
        path: "pushwire.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/pushwire.js"),
    },
    Asset {
        path: "pushwire.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/pushwire.mjs"),
    },
    Asset {
        path: "pushwire.d.ts",
        content_type: "application/typescript; charset=utf-8",
        body: include_bytes!("../../web/pushwire.d.ts"),
    },
];

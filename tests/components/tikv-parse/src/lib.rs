//! Bench fixture: the TiKV adapter's own `pd.rs`, `client.rs` and `bytesize.rs` (included by
//! path, so this is the same source the adapter compiles), behind one export that parses a PD
//! region list. `cargo bench --bench parse` times it against the adapter crate built natively.

#![allow(dead_code)]

mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit/since_v0.1.0", "wit"],
        world: "operator-test:tikv-parse/tikv-parse",
        generate_all,
    });
}

#[path = "../../../../components/tikv/src/bytesize.rs"]
mod bytesize;
#[path = "../../../../components/tikv/src/client.rs"]
mod client;
#[path = "../../../../components/tikv/src/pd.rs"]
mod pd;

struct Fixture;

impl bindings::Guest for Fixture {
    fn parse_regions(body: Vec<u8>) -> Result<u32, String> {
        pd::parse_regions("/pd/api/v1/regions", &body).map(|r| r.len() as u32).map_err(|e| format!("{e:?}"))
    }

    fn body_len(body: Vec<u8>) -> u32 {
        body.len() as u32
    }
}

bindings::export!(Fixture with_types_in bindings);

//! Fuzzes the JSON-RPC envelope as hearthd reads it (`hearth-api`'s `process`: a
//! single `Request` parsed straight from the bytes, else a `Value` whose items, one
//! or a batch, are each turned into a `Request`), and every method's params decoded
//! into its declared type. Must never panic; a parsed request must round-trip.
#![no_main]

use hearth_rpc::Request;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(req: &Request) {
    let bytes = serde_json::to_vec(req).expect("a request serialises");
    let again: Request = serde_json::from_slice(&bytes).expect("own output parses");
    assert_eq!(&again, req, "round trip changed the request");
    if let Some(params) = &req.params {
        let _ = hearth_rpc::methods::decode_params(&req.method, params.clone());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        check(&req);
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let items = match value {
        Value::Array(items) => items,
        item => vec![item],
    };
    for item in items {
        if let Ok(req) = serde_json::from_value::<Request>(item) {
            check(&req);
        }
    }
});

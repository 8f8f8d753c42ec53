//! The JSON-RPC request decoder (`nexus_wire::jsonrpc::decode_request`).
//!
//! Invariants: no panic on any bytes; a decoded request has object params and a null, string
//! or number id; an error carries such an id and a known code; a decoded request written
//! back out (and through `encode_request` when its id is an integer) decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_wire::jsonrpc::{decode_request, encode_request, printable};
use serde_json::{Value, json};

fn valid_id(id: &Value) -> bool {
    matches!(id, Value::Null | Value::String(_) | Value::Number(_))
}

fuzz_target!(|data: &[u8]| {
    let req = match decode_request(data) {
        Ok(req) => req,
        Err((id, e)) => {
            assert!(valid_id(&id), "error with id {id:?}");
            assert!(e.kind().is_some(), "unknown error code {}", e.code);
            return;
        }
    };
    assert!(req.params.is_object(), "params {:?}", req.params);
    assert!(valid_id(&req.id), "id {:?}", req.id);

    // Floats need not survive a text round trip bit for bit: compare only exact ids.
    if !req.id.is_f64() {
        let mut again = json!({"jsonrpc": "2.0", "id": req.id, "params": req.params});
        if let Some(m) = &req.method {
            again["method"] = Value::from(m.as_str());
        }
        let body = serde_json::to_vec(&again).expect("serialise");
        let back = decode_request(&body).expect("a re-encoded request decodes");
        assert_eq!(back.id, req.id);
        assert_eq!(back.method, req.method);
    }
    if let (Some(id), Some(m)) = (req.id.as_u64(), &req.method) {
        let body = serde_json::to_vec(&encode_request(id, m, &req.params)).expect("serialise");
        let back = decode_request(&body).expect("encode_request output decodes");
        assert_eq!(back.id, Value::from(id));
        assert_eq!(back.method.as_deref(), Some(m.as_str()));
        let _ = printable(m);
    }
});

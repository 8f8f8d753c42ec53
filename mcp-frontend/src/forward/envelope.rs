//! The JSON-RPC envelope of a forwarded call, written and read without a `Value` tree: the
//! params go out as given, the `result` comes back as a slice of the response body.

use bytes::Bytes;
use nexus_wire::RpcError;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Call<'a, P: ?Sized> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a P,
}

/// The request body of `method(params)`.
pub(super) fn encode<P: Serialize + ?Sized>(
    id: u64,
    method: &str,
    params: &P,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Call {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}

/// The response envelope: `jsonrpc` and `id` must be there, as `nexus_wire`'s `Response`
/// requires; their values are not used.
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(rename = "jsonrpc")]
    _jsonrpc: IgnoredAny,
    #[serde(rename = "id")]
    _id: IgnoredAny,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RpcError>,
}

/// Why a response body was not a JSON-RPC answer.
#[derive(Debug)]
pub(super) struct Malformed;

/// The raw `result` (a slice of `body`, not a copy), or the `error`. An `error` wins over a
/// `result`; neither (or a `null` result) is an internal error, as in `Response::into_result`.
pub(super) fn decode(body: &Bytes) -> Result<Result<Bytes, RpcError>, Malformed> {
    let reply: Reply<'_> = serde_json::from_slice(body).map_err(|_| Malformed)?;
    Ok(match (reply.result, reply.error) {
        (_, Some(e)) => Err(e),
        (Some(r), None) => Ok(body.slice_ref(r.get().as_bytes())),
        (None, None) => Err(RpcError::internal()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_params_as_given() {
        let params = RawValue::from_string(r#"{"path": "/a"}"#.into()).expect("raw");
        let body = encode(7, "read", &*params).expect("encode");
        assert_eq!(
            std::str::from_utf8(&body).expect("utf-8"),
            r#"{"jsonrpc":"2.0","id":7,"method":"read","params":{"path": "/a"}}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "id": 7, "method": "read", "params": {"path": "/a"}})
        );
    }

    #[test]
    fn decodes_result_error_and_defects_as_the_wire_response_does() {
        let ok = |s: &'static str| decode(&Bytes::from_static(s.as_bytes()));
        let r = ok(r#"{"jsonrpc":"2.0","id":1,"result":{"a": [1, "x"]}}"#)
            .expect("envelope")
            .expect("result");
        assert_eq!(&r[..], br#"{"a": [1, "x"]}"#);
        let e = ok(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32007,"message":"gone"}}"#)
            .expect("envelope")
            .expect_err("error");
        assert_eq!((e.code, e.message.as_str()), (-32007, "gone"));
        let both =
            ok(r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":-32003,"message":"no"}}"#)
                .expect("envelope")
                .expect_err("the error wins");
        assert_eq!(both.code, -32003);
        for empty in [
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        ] {
            assert_eq!(
                ok(empty).expect("envelope").expect_err("internal"),
                RpcError::internal()
            );
        }
        for bad in [
            "",
            "{",
            "[]",
            r#"{"id":1,"result":1}"#,
            r#"{"jsonrpc":"2.0","result":1}"#,
        ] {
            assert!(ok(bad).is_err(), "{bad:?} is not an answer");
        }
        // The same verdicts as the Value-based envelope.
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32007,"message":"gone","data":{"x":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":-32003,"message":"no"}}"#,
            r#"{"id":1,"result":1}"#,
            r#"{"jsonrpc":"2.0","result":1}"#,
        ] {
            let wire = serde_json::from_str::<nexus_wire::jsonrpc::Response>(body)
                .map(|r| r.into_result());
            let raw = ok(body).map(|r| {
                r.map(|b| serde_json::from_slice::<serde_json::Value>(&b).expect("raw json"))
            });
            match (wire, raw) {
                (Ok(w), Ok(r)) => assert_eq!(w, r, "{body}"),
                (Err(_), Err(Malformed)) => {}
                (w, r) => panic!("{body}: wire {w:?}, raw {r:?}"),
            }
        }
    }
}

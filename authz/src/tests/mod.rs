//! The crate's tests: parsing and validation, the evaluator on worked examples, hostile sizes,
//! and properties relating the compiled grants to the reference evaluator.

mod eval;
mod hostile;
mod parse;
mod props;

use crate::model::{ObjectRef, Relation, SubjectRef, Tuple};
use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

pub(crate) fn tuple(subject: &str, relation: &str, object: &str) -> Tuple {
    let t = Tuple::new(
        SubjectRef::parse(subject).expect("subject"),
        relation.parse::<Relation>().expect("relation"),
        ObjectRef::parse(object).expect("object"),
    );
    t.validate().expect("a valid tuple");
    t
}

pub(crate) fn path(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

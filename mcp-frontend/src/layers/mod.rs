//! The tower layers in front of `/mcp`, in the order a request meets them (see
//! [`crate::router`]): observe → guard → bearer → limits → [`crate::mcp`].

pub(crate) mod admission;
pub(crate) mod bearer;
pub(crate) mod guard;
pub(crate) mod limits;
pub(crate) mod observe;

//! Every mistake of one attribute in one compile, and nothing else: the
//! handler is still emitted (without the guard), so Rocket's expansion and
//! `routes!` see a function and report nothing more.

use auth_macros::requires;
use rocket::{get, routes};

#[requires(staf, any(), verified, verified, tenant)]
#[get("/reports")]
fn reports() {}

fn main() {
    let _ = routes![reports];
}

use auth_macros::{Roles, requires};
use rocket::get;

#[derive(Clone, Copy, PartialEq, Eq, Roles)]
enum Billing {
    #[grants("invoices.write")]
    Accountant,
    #[grants("invoices.read")]
    Viewer,
}

#[requires(permission = "invoices.raed", roles = Billing)]
#[get("/invoices")]
fn invoices() {}

fn main() {}

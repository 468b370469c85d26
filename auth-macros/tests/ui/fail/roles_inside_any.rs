use auth_macros::requires;
use rocket::get;

#[requires(any(staff, role = "admin", roles = MyRoles))]
#[get("/support")]
fn support() {}

fn main() {}

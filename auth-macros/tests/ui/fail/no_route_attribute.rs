use auth_macros::requires;

#[requires(staff)]
fn not_a_route() {}

fn main() {
    not_a_route();
}

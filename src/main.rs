fn main() {
    println!("acdmon");
}

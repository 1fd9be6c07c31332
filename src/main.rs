fn main() {
    println!("unfarm");
}

//! `relflow schema`

use crate::exit_code;

pub fn run() -> i32 {
    println!("{}", crate::pipeline::schema::JSON_SCHEMA);
    exit_code::OK
}

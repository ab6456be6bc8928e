#![allow(dead_code)]
pub mod ami;
pub mod day;

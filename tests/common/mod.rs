#![allow(dead_code)]
pub mod ami;

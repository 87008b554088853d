//! Readers for each dataset layout the cleaner accepts.

pub mod flickr_token;
pub mod kaggle;
pub mod karpathy;

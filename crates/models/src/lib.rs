//! The burn networks of the pipeline: the ResNet50 image encoder (with its torchvision-exact
//! preprocessing and weight import) and the CNN-RNN caption decoder, generic over the backend.

pub mod attention_map;
pub mod backend;
pub mod image_files;
pub mod preprocess;
pub mod resnet;

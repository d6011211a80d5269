//! The small classifiers of the book's first chapters: LeNet-5 and a one-hidden-layer MLP, as
//! [`Sequential`] stacks.

use crate::ModelOptions;
use ferrovision_nn::layers::{Conv2D, Dense, Flatten, MaxPooling2D, PaddingMode};
use ferrovision_nn::{Activation, Network, Result, Sequential};

/// LeNet-5 as the book builds it in Keras, channels-first: ReLU and max pooling instead of the
/// 1998 paper's scaled tanh and subsampling. Needs images of at least 12x12.
pub fn lenet5(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    opts.check_image("lenet5", 12)?;
    let net = Sequential::new(&opts.input_shape)
        .named("lenet5")
        .add(
            Conv2D::new(6, 5)
                .padding(PaddingMode::Same)
                .activation(Activation::Relu),
        )
        .add(MaxPooling2D::new(2))
        .add(Conv2D::new(16, 5).activation(Activation::Relu))
        .add(MaxPooling2D::new(2))
        .add(Flatten::new())
        .add(Dense::new(120).activation(Activation::Relu))
        .add(Dense::new(84).activation(Activation::Relu))
        .add(Dense::new(opts.classes))
        .build()?;
    Ok(Box::new(net))
}

/// Multilayer perceptron: Flatten-Dense(128, ReLU)-Dense(classes).
pub fn mlp(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    opts.check_image("mlp", 1)?;
    let net = Sequential::new(&opts.input_shape)
        .named("mlp")
        .add(Flatten::new())
        .add(Dense::new(128).activation(Activation::Relu))
        .add(Dense::new(opts.classes))
        .build()?;
    Ok(Box::new(net))
}

"""Training the Vec2Face generator: loss terms and their composition.

The models themselves (generator, discriminator) live in :mod:`vec2face.models`.
"""

from vec2face.generator.losses import (
    GeneratorLoss,
    GeneratorLossConfig,
    IdentityLoss,
    LPIPSLoss,
    SSIMLoss,
    adaptive_gan_weight,
    discriminator_loss,
    gan_weight_at,
    ls_discriminator_loss,
    ls_generator_loss,
    negative_mean_generator_loss,
    pixel_mse,
    ssim,
    token_loss,
)

__all__ = [
    "GeneratorLoss",
    "GeneratorLossConfig",
    "IdentityLoss",
    "LPIPSLoss",
    "SSIMLoss",
    "adaptive_gan_weight",
    "discriminator_loss",
    "gan_weight_at",
    "ls_discriminator_loss",
    "ls_generator_loss",
    "negative_mean_generator_loss",
    "pixel_mse",
    "ssim",
    "token_loss",
]

"""Typed run configuration: YAML presets + `key.sub=value` overrides -> frozen-shape dataclasses.

Why not a big argparse options class: every field lives in one small section, a preset file only
states what differs from the published recipe (the defaults here), and validation names the exact
key and the file or command-line override it came from. Validation is pydantic's (types, Literal
choices, dict[int, int]); this module only adds the source tracking and the YAML plumbing.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml

from twingan.atomic import write_text
from twingan.errors import ConfigError, UserError

_STRICT = pydantic.ConfigDict(extra="forbid")
FACE_TAGS = (
    "blonde hair", "brown hair", "black hair", "blue hair", "pink hair", "purple hair", "green hair",
    "red hair", "silver hair", "white hair", "orange hair", "aqua hair", "grey hair", "multicolored hair",
    "blue eyes", "red eyes", "brown eyes", "green eyes", "purple eyes", "yellow eyes", "pink eyes",
    "aqua eyes", "black eyes", "orange eyes", "grey eyes",
    "long hair", "short hair", "very long hair", "twintails", "ponytail", "braid", "ahoge", "bangs",
    "blunt bangs", "drill hair", "side ponytail", "hair over one eye",
    "glasses", "hat", "hair ornament", "hair ribbon", "hair bow", "hairband", "animal ears",
    "male", "smile", "open mouth", "blush", "dark skin",
)
"""The default illust2vec attribute subset for faces: hair and eye colours, hair styles, accessories."""
Fraction = Annotated[float, pydantic.Field(gt=0.0, le=1.0)]
NonNegative = Annotated[float, pydantic.Field(ge=0.0)]
Positive = Annotated[int, pydantic.Field(gt=0)]
Channels = Annotated[int, pydantic.Field(gt=0, le=4096)]
"""A width: the widest published network has 512 channels; 4096 keeps a typo (8192, 10**8) from
building tens of GiB of weights before any other check."""
BatchSize = Annotated[int, pydantic.Field(gt=0, le=4096)]
Rate = Annotated[float, pydantic.Field(gt=0.0, allow_inf_nan=False)]
PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class DataConfig:
    """Where the two unpaired domains live and how pictures become training tensors."""

    __pydantic_config__ = _STRICT

    domain_a: str | None = None
    """Folder of domain A pictures (human photos by convention), searched recursively."""
    domain_b: str | None = None
    """Folder of domain B pictures (anime by convention), searched recursively."""
    resize: Literal["squash", "crop"] = "squash"
    """squash: resize to a square ignoring aspect (the original); crop: keep aspect, centre crop."""
    random_crop: Annotated[float, pydantic.Field(ge=0.25, le=1.0)] = 0.8
    """Side of the random crop as a fraction of the picture (1.0 disables it)."""
    hflip: bool = True
    """Random horizontal flip of training pictures."""
    rotation: Annotated[float, pydantic.Field(ge=0.0, le=180.0)] = 0.0
    """Maximum random rotation in degrees, reflect-padded (0 disables it)."""
    brightness: Annotated[float, pydantic.Field(ge=0.0, le=1.0)] = 32 / 255
    """Additive brightness jitter, +- this much on [0, 1] images."""
    saturation: Annotated[float, pydantic.Field(ge=0.0, le=1.0)] = 0.5
    """Saturation factor drawn from [1 - s, 1 + s]."""
    grayscale: bool = False
    """Train on 1-channel images."""
    max_pixels: Positive = 50_000_000
    """Pictures with more pixels are refused as possible decompression bombs."""
    verify: Literal["full", "header"] = "full"
    """full: decode every picture once at start-up so a corrupt file can never reach training."""


@dataclass
class ModelConfig:
    """Twin-GAN network sizes; the defaults are the published 256 px recipe."""

    __pydantic_config__ = _STRICT

    name: Literal["twingan"] = "twingan"
    """The model family; `cyclegan` switches to CycleGAN's keys and defaults."""
    resolution: Positive = 256
    """Final output resolution (a power of two, at least 8)."""
    channel_base: Annotated[int, pydantic.Field(gt=0, le=2**16)] = 1024
    """Channels at stage s (hw = 4 * 2^s) are min(channel_base / 2^s, max_channels), at least
    min_channels."""
    max_channels: Channels = 256
    """Most channels any stage may have (see channel_base)."""
    min_channels: Annotated[int, pydantic.Field(ge=0, le=4096)] = 0
    """Fewest channels any stage may have: widens only the top blocks, so a model grown one
    resolution further keeps its lower layers' shapes (twingan_cpu_128's 128 px block gets 16
    channels where halving would leave 8; 0: no floor)."""
    unet_max_resolution: int = 256
    """Highest resolution whose encoder block output is concatenated into the generator."""
    equalized_lr: bool = False
    """PGGAN's equalized learning rate: N(0, 1) weights scaled by He's constant at run time, so every
    layer learns at the same relative rate (off in the original)."""
    weight_init: Literal["original", "he"] = "original"
    """Without equalized lr: N(0, 0.02) as the original, or He-scaled N(0, gain^2 / fan_in), which keeps
    activations from shrinking layer by layer in the normalisation-free discriminators."""
    spectral_norm: bool = False
    """Spectral normalisation in the discriminators."""
    bn_momentum: Fraction = 0.01
    """Running-statistics momentum of the domain batch norm (the original's decay 0.99)."""
    norm: Literal["batch", "instance", "layer_instance"] = "batch"
    """The normalisation that carries the domain switch in encoder and generator: batch (the
    original), instance (conditional instance norm) or layer_instance (U-GAT-IT's LIN mix); each
    keeps one scale and shift per domain."""
    translation_link_max_resolution: Annotated[int, pydantic.Field(ge=0)] = 0
    """Highest resolution whose UNet link a translation takes; reconstructions still take every
    link up to unet_max_resolution. Above it a translation draws its detail from the coarser code,
    as CycleGAN's decoder does from a 1/4-resolution bottleneck, instead of copying the source's
    (0: as unet_max_resolution, the original)."""
    residual_from: Annotated[int, pydantic.Field(ge=0)] = 0
    """From this size up, a block adds to the size below instead of replacing it: the picture is
    the one of half the size, upsampled (bilinear), plus the block's own to_rgb (StyleGAN2's skip
    generator), and the encoder's features at half the size are that size's from_rgb of the
    downsampled picture plus the block's, through a per-channel gate. The added parts start at
    zero (the block's to_rgb weights, the gate), so a block grown onto a trained model
    (--init-from) starts as exactly that model upsampled and learns the detail on top, where a
    replacing block has to relearn all of it (docs/quality.md, 128 px campaign); the fade ramps
    the added part. 0: blocks replace the size below once faded in, as in PGGAN (the original)."""
    skip_gate: Literal["none", "gated"] = "none"
    """UNet links: none concatenates the encoder features as they are (the original); gated scales
    them by a learned per-domain, per-channel gate that starts closed."""
    skip_highpass_from: Annotated[int, pydantic.Field(ge=0)] = 0
    """UNet links at this side and above pass only their high frequencies (each value minus the mean
    of its 8 neighbours, StarGAN v2's high-pass), so they carry edges but not flat colour and
    shading to copy (0: every link whole, the original)."""
    skip_dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.0
    """In training, each UNet link of each picture is zeroed with this probability, independently
    per link, so the generator must also draw the target domain from coarser features alone
    instead of copying the source's detail through the links (0: every link always, the
    original). Inference always passes every link."""
    trunk_blocks: Annotated[int, pydantic.Field(ge=0, le=16)] = 0
    """Residual blocks (shared convolutions, domain norm) after the generator's block at
    trunk_resolution: the deep low-resolution trunk through which CycleGAN's and U-GAT-IT's
    generators reshape a face (0: none, the original)."""
    trunk_resolution: Positive = 16
    """The generator resolution that holds the trunk (a power of two, 8 to model.resolution)."""
    discriminator: Literal["global", "patch"] = "global"
    """global: one logit per picture (the original); patch: also one per cell of a grid."""
    patch_scale: Annotated[int, pydantic.Field(ge=2)] = 8
    """Patch critic: the grid is the picture's side / patch_scale (at least 4 x 4)."""
    discriminator_width: Annotated[int, pydantic.Field(ge=1, le=8)] = 1
    """Factor on every discriminator stage's channels (1: the encoder's widths, the original). A
    critic as thin as the generator's top stages (16 channels at 64 px in the CPU presets) may
    not see what still tells a translation from a drawing; CycleGAN's and U-GAT-IT's critics are
    several times wider than their generators' outer layers."""
    mbstd_group_size: Positive = 4
    """Pictures per group of the discriminators' minibatch standard-deviation feature (PGGAN), which
    lets them see a collapsed batch."""
    character: Literal["none", "learned", "illust2vec"] = "none"
    """Where the character code that conditions anime output comes from: none; learned (a small
    encoder trained with the GAN on the anime pictures, contrastively); illust2vec (the tag
    probabilities of `character_tags`, needs `illust2vec_weights`)."""
    condition_dim: Annotated[int, pydantic.Field(ge=0)] = 0
    """Length of the character code fed to the anime-domain norm (0: unconditioned). The learned
    source needs it set; the illust2vec source takes the number of `character_tags`."""
    character_tags: list[str] = field(default_factory=lambda: list(FACE_TAGS))
    """illust2vec tags whose probabilities make the code (illust2vec source)."""
    illust2vec_weights: str | None = None
    """The illust2vec tag model converted with `illust2vec convert` (illust2vec source)."""
    character_channels: Positive = 32
    """Width of the learned character encoder."""

    @property
    def code_dim(self) -> int:
        """Length of the character code the networks take (0: unconditioned)."""
        return len(self.character_tags) if self.character == "illust2vec" else self.condition_dim


@dataclass
class LossConfig:
    """Loss kinds and weights; the defaults are the published recipe."""

    __pydantic_config__ = _STRICT

    gan: Literal["nonsaturating", "hinge", "lsgan"] = "nonsaturating"
    """GAN loss of generator and discriminators (nonsaturating: the original)."""
    penalty: Literal["dragan", "r1", "none"] = "dragan"
    """Discriminator gradient penalty: dragan (the original; unit gradient norm near the real pictures),
    r1 (small gradients on the real pictures) or none."""
    penalty_weight: NonNegative = 0.25
    """Weight of the gradient penalty in the discriminators' loss."""
    penalty_every: Positive = 1
    """Discriminator steps between gradient penalties, each weighted by this many (StyleGAN2's lazy
    regularisation, Karras et al. 2020: R1 every 16 steps lost nothing). The penalty's double
    backward is about 40% of a step on CPU; 1: every step, the original."""
    reconstruction: NonNegative = 1.0
    """Weight of the L1 between each picture and its reconstruction in its own domain."""
    translation_gan: NonNegative = 1.0
    """Weight of the GAN term on translations, for the generator and the discriminators."""
    translation_gan_a: NonNegative | None = None
    """Weight of the GAN term on translations into domain a (photos), for the generator and a's
    critic; none: translation_gan. A strong pull towards anime can spoil anime -> photo through the
    shared network; this sets the two directions apart."""
    reconstruction_gan: NonNegative = 1.0
    """Weight of the GAN term on reconstructions, for the generator and the discriminators (0: off)."""
    reconstruction_gan_min_resolution: int = 64
    """Resolution from which the discriminators also judge reconstructions."""
    semantic: NonNegative = 0.1
    """Weight of semantic consistency: a translation, encoded again, must give its source's latent (L1)."""
    cycle: NonNegative = 0.0
    """Weight of the cycle L1: a translation generated back must give its source (0: off, the original)."""
    character: NonNegative = 1.0
    """Code consistency: a translation must carry the character code it was given."""
    character_contrastive: NonNegative = 1.0
    """Learned source: two crops of one anime picture get one code, other pictures other codes."""
    nce: NonNegative = 0.0
    """PatchNCE (CUT, Park et al. 2020): each patch of a translation, seen by the shared encoder,
    must match the same patch of its source among the picture's other patches. Keeps content
    without asking for the source's pixels (0: off, the original)."""
    nce_patches: Positive = 64
    """Patches sampled per picture and encoder level for PatchNCE (CUT: 256)."""
    diffaugment: list[Literal["color", "translation", "cutout"]] = field(default_factory=list)
    """DiffAugment (Zhao et al. 2020) before every call of the two critics, on real and generated
    pictures alike, in the generator's and the critics' passes: random brightness/saturation/
    contrast, shifts of up to 1/8 of the side, a blanked square of half the side. Keeps a critic
    of a small set (a hundred pictures) from memorising it ([]: off, the published recipe)."""
    link_adversarial: NonNegative = 0.0
    """DRIT's content critic on the shared encoder's output: a small critic per level (the latent and
    every UNet link) learns to tell photo features from anime features, and the encoder is pushed to
    leave it at one half, so the links carry where things are rather than the source domain's look
    (0: off, the original)."""


def _published_batch_sizes() -> dict[int, int]:
    return {4: 8, 8: 8, 16: 8, 32: 8, 64: 8, 128: 4, 256: 3, 512: 2}


@dataclass
class LoopConfig:
    """Bookkeeping every model's training loop shares: seeding, logging, checkpoints, stopping."""

    __pydantic_config__ = _STRICT

    seed: Annotated[int, pydantic.Field(ge=0, lt=2**31)] = 0
    """Seed of the initial weights, the order of each domain's pictures, the crops and the augmentation."""
    log_every: Positive = 1_000
    """Images between scalar logs."""
    sample_every: Positive = 20_000
    """Images between sample grids."""
    checkpoint_every: Positive = 50_000
    """Images between checkpoints."""
    keep_checkpoints: Positive = 3
    """Newest checkpoints kept in the run folder; older ones are deleted."""
    max_images: Positive | None = None
    """Stop after this many images (default: at the end of the schedule)."""
    max_minutes: Annotated[float, pydantic.Field(gt=0.0)] | None = None
    """Stop (with a checkpoint) after this much wall-clock time."""
    nonfinite_patience: Positive = 3
    """Consecutive non-finite steps before rolling back to the last checkpoint; as many
    rollbacks without a new checkpoint stop the run."""
    eval_every: Positive | None = None
    """Images between evaluations (`twingan eval`'s metrics, at the phase's resolution) on
    pictures held out of training; they go to TensorBoard and eval.jsonl. null: off."""
    keep_best: bool = True
    """With eval_every: also keep the checkpoint whose evaluation at the final resolution had the
    lowest SWD (mean of both directions) as checkpoints/best-IMAGES.pt. GAN runs do not improve
    monotonically, and the newest-N rule would delete their best point."""
    eval_pictures: Positive = 100
    """Pictures per domain held out for eval_every (every n-th of the sorted list, so the split is
    the same on every run and resume)."""


@dataclass
class TrainConfig(LoopConfig):
    """Optimiser and progressive-growing schedule; the defaults are the published recipe."""

    __pydantic_config__ = _STRICT

    lr: Rate = 1e-4
    """Adam learning rate of every network."""
    beta1: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.5
    """Adam's decay of the gradient average."""
    beta2: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.99
    """Adam's decay of the squared-gradient average."""
    eps: Rate = 1e-8
    """Adam's epsilon, added to the root of the squared-gradient average."""
    domain_switch_lr_multiplier: Annotated[float, pydantic.Field(gt=0.0)] = 1.0
    """Learning-rate factor for the per-domain batch-norm scales and shifts. Adam moves every
    parameter by about lr per step whatever its size; these are O(1) while N(0, 0.02) conv weights
    are 50 times smaller, so at one shared rate the domain switch learns 50 times slower, relatively."""
    discriminator_lr_multiplier: Annotated[float, pydantic.Field(gt=0.0)] = 1.0
    """Learning-rate factor for the two discriminators (TTUR, Heusel et al. 2017: a critic that
    learns faster than the generator it judges). 1: one rate for all, the original."""
    layer_lr_multipliers: dict[int, Annotated[float, pydantic.Field(ge=0.0)]] = field(default_factory=dict)
    """Learning-rate factors for the encoder's and generator's layers by the picture size they work
    at: a layer takes the factor of the smallest key at or above its size, 1 above every key.
    {64: 0.1} trains everything up to 64 px at a tenth of the rate while the 128 px blocks learn at
    the full one, which is how a run grown with --init-from adjusts the trained layers without
    unlearning them (docs/quality.md, 128 px campaign). Empty: one rate for all."""
    lr_decay_start: Annotated[int, pydantic.Field(ge=0)] | None = None
    """Images seen at which every learning rate starts falling linearly to zero (null: constant,
    the original). A constant rate kept moving the long CPU run towards anime shapes and then
    collapsed its colours (docs/quality.md); a decay lets it settle where it stands."""
    lr_decay_images: Positive = 20_000
    """Images over which the decay reaches zero; stop the run there (train.max_images)."""
    batch_size: dict[int, BatchSize] = field(default_factory=_published_batch_sizes)
    """Batch size per resolution."""
    start_resolution: int = 4
    """Resolution of the first phase of progressive growing (a power of two, at least 4)."""
    phase_images: Positive = 300_000
    """Images shown in each fade-in phase and in each stable phase."""
    final_phase_images: Positive | None = None
    """Images of the last, stable phase at the final resolution (default: phase_images), so a
    short budget can spend most of its images at the size users see."""
    ema_half_life: Positive = 10_000
    """Images after which an update's weight in the EMA of encoder + generator has halved."""
    generator_warmup_images: Annotated[int, pydantic.Field(ge=0)] = 0
    """Images at the start of a run during which only the judges learn (the critics and PatchNCE's
    heads): the weights of encoder and generator and their EMA are held (batch-norm statistics
    follow the pictures). A run started with --init-from has a trained generator and new judges,
    whose first, random verdicts would otherwise push the trained layers around (0: none)."""
    ema_rampup: Annotated[float, pydantic.Field(gt=0.0)] | None = 0.05
    """Cap the half-life at this fraction of the images seen so far (StyleGAN2-ADA's ramp-up),
    so that the average does not drag early phases and freshly grown layers along; null: off."""


@dataclass
class CycleGANModelConfig:
    """CycleGAN networks (Zhu et al. 2017); the defaults are the public reference's."""

    __pydantic_config__ = _STRICT

    name: Literal["cyclegan"] = "cyclegan"
    """The model family; `twingan` switches to Twin-GAN's keys and defaults."""
    resolution: Positive = 256
    """Training crop size; the networks are fully convolutional, so inference takes any multiple of 4
    (ResNet) or of 2^unet_downs (U-Net)."""
    generator: Literal["resnet", "unet"] = "resnet"
    """Generator: resnet (residual blocks between down- and up-sampling, the reference) or unet (skip links)."""
    resnet_blocks: Positive = 9
    """Residual blocks of the ResNet generator (6 for 128 px, 9 for 256 px in the reference)."""
    unet_downs: Positive = 8
    """Down-samplings of the U-Net generator (8 for 256 px, 7 for 128 px in the reference)."""
    generator_channels: Channels = 64
    """Channels of the generators' first layer (ngf in the reference)."""
    discriminator_channels: Channels = 64
    """Channels of the PatchGAN's first layer (ndf in the reference)."""
    discriminator_layers: Positive = 3
    """Stride-2 layers of the PatchGAN; 3 gives the 70x70 receptive field."""
    norm: Literal["instance", "batch"] = "instance"
    """Normalisation of generators and discriminators (instance: the reference)."""
    dropout: bool = False
    """Dropout 0.5 in the generator's residual blocks (ResNet) or inner decoder layers (U-Net)."""


@dataclass
class CycleGANLossConfig:
    """CycleGAN objective; the defaults are the published recipe."""

    __pydantic_config__ = _STRICT

    gan: Literal["lsgan", "vanilla", "wgangp"] = "lsgan"
    """GAN loss: lsgan (least squares, the reference), vanilla (cross-entropy) or wgangp (Wasserstein)."""
    cycle_a: NonNegative = 10.0
    """Weight of A -> B -> A cycle L1 (0 removes that direction)."""
    cycle_b: NonNegative = 10.0
    """Weight of B -> A -> B cycle L1."""
    identity: NonNegative = 0.5
    """Identity L1 weight as a fraction of each direction's cycle weight (0 removes it)."""
    gp_weight: NonNegative = 10.0
    """Gradient-penalty weight, used by wgangp only."""


@dataclass
class CycleGANTrainConfig(LoopConfig):
    """Optimiser and epoch schedule; the defaults are the public reference's."""

    __pydantic_config__ = _STRICT

    lr: Annotated[float, pydantic.Field(gt=0.0)] = 2e-4
    """Adam learning rate of every network, before the decay epochs."""
    beta1: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.5
    """Adam's decay of the gradient average."""
    beta2: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.999
    """Adam's decay of the squared-gradient average."""
    batch_size: Positive = 1
    """Pictures of each domain per step."""
    epochs: Annotated[int, pydantic.Field(ge=0)] = 100
    """Epochs at the initial learning rate."""
    decay_epochs: Annotated[int, pydantic.Field(ge=0)] = 100
    """Epochs over which the learning rate then falls linearly towards 0."""
    epoch_images: Positive | None = None
    """Images per epoch (default: the larger domain's picture count, as the reference)."""
    pool_size: Annotated[int, pydantic.Field(ge=0)] = 50
    """Generated pictures kept for the discriminators (0: always the newest)."""
    log_every: Positive = 100
    sample_every: Positive = 5_000
    checkpoint_every: Positive = 10_000


@dataclass
class RuntimeConfig:
    """Where and how the run executes; never changes the maths except `precision`."""

    __pydantic_config__ = _STRICT

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: a CUDA GPU when there is one, else the CPU; cuda fails where there is none."""
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    """bf16 and fp16 run the networks under autocast (fp16 with gradient scaling); gradient penalties
    stay in fp32. auto: bf16 where the hardware computes it natively (a CPU with AMX or AVX512-BF16,
    a GPU with bf16), else fp32; the run's log names the choice."""
    channels_last: bool | Literal["critics"] = False
    """Keep pictures and networks in channels-last memory layout (same maths): true for all networks,
    "critics" for the discriminators only. On CPUs with bf16 (AMX) the encoder's and generator's
    narrow high-resolution layers (8-16 channels at 64-128 px) run their batch norm and pixel norm
    several times slower in channels-last, while the critics' convolutions gain (docs/benchmarks.md)."""
    num_workers: Annotated[int, pydantic.Field(ge=0, le=64)] = 4
    """Loader processes that decode and crop pictures (0: in the training process)."""
    cpu_threads: Annotated[int, pydantic.Field(gt=0, le=1024)] | None = None
    """Threads for CPU maths (default: PyTorch's choice, one per core). Set it to the number of
    free cores when other programs share the CPU: oversubscribed threads make steps ~40x slower."""
    output_dir: str = "runs"
    """Folder of new run folders (PRESET-TIMESTAMP) when `twingan train` gets no --run-dir."""


@dataclass
class Config:
    """A whole Twin-GAN run: one section per concern."""

    __pydantic_config__ = _STRICT

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


@dataclass
class CycleGANConfig:
    """A whole CycleGAN run: the data and runtime sections are Twin-GAN's, the rest its own."""

    __pydantic_config__ = _STRICT

    data: DataConfig = field(default_factory=lambda: DataConfig(random_crop=256 / 286, brightness=0.0,
                                                                saturation=0.0))
    model: CycleGANModelConfig = field(default_factory=CycleGANModelConfig)
    loss: CycleGANLossConfig = field(default_factory=CycleGANLossConfig)
    train: CycleGANTrainConfig = field(default_factory=CycleGANTrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


RunConfig = Config | CycleGANConfig
MODELS: dict[str, type] = {"twingan": Config, "cyclegan": CycleGANConfig}
"""Config class per `model.name`; the name picks the defaults and the keys a run accepts."""


def resolve_preset(name_or_path: str | Path) -> Path:
    """A preset is a YAML path, or the bare name of a file in the project's configs/ folder."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.suffix and named.is_file():
        return named
    known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml")) if PRESET_DIR.is_dir() else []
    hint = f" Presets: {', '.join(known)}." if known else ""
    raise UserError(f"config preset '{name_or_path}' not found (no such file).{hint}")


def load_config(preset: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Build a config from defaults, an optional preset file, then `key.sub=value` overrides.

    `model.name` (from the preset or an override; default twingan) chooses the config class and so
    the defaults underneath. Values in overrides are parsed as YAML scalars (`train.lr=2e-4`,
    `data.hflip=false`, `train.batch_size.128=2`). Every refused key or value is reported with its origin.
    """
    return load_config_with_sources(preset, overrides)[0]


def load_config_with_sources(preset: str | Path | None = None,
                             overrides: list[str] | tuple[str, ...] = ()) -> tuple[RunConfig, dict[str, str]]:
    """`load_config`, plus where each value the user gave came from, for `twingan config --explain`.

    The second item maps every dotted key the preset or an override set (sections, and each item of a
    dict-valued key such as `train.batch_size.128`, included) to its source: "preset PATH" or
    "override 'ITEM'". Keys not in it hold the model's default.
    """
    user: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if preset is not None:
        path = resolve_preset(preset)
        _merge(user, origin, _read_yaml(path), f"preset {path}", prefix="")
    for item in overrides:
        key, value = _parse_override(item)
        _merge(user, origin, _nest(key, value), f"override '{item}'", prefix="")
    model = user.get("model")
    name = model.get("name", "twingan") if isinstance(model, dict) else "twingan"
    if name not in MODELS:
        source = next((origin[k] for k in _prefixes("model.name") if k in origin), "defaults")
        raise ConfigError(f"config key 'model.name' from {source}: unknown model "
                          f"{name!r} (choose {', '.join(MODELS)})")
    cls = MODELS[name]
    raw = config_to_dict(cls())
    _merge(raw, {}, user, "", prefix="")
    try:
        cfg = pydantic.TypeAdapter(cls).validate_python(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc, origin, cls)) from None
    return cfg, origin


def config_from_dict(raw: dict[str, Any], source: str) -> RunConfig:
    """A config saved inside a checkpoint, validated like any other; `source` names it in errors."""
    model = raw.get("model") if isinstance(raw, dict) else None
    name = model.get("name", "twingan") if isinstance(model, dict) else None
    if name not in MODELS:
        raise UserError(f"{source} holds no usable config (model {name!r})")
    try:
        return pydantic.TypeAdapter(MODELS[name]).validate_python(raw)
    except pydantic.ValidationError as exc:
        raise UserError(f"{source} holds a config this TwinGAN cannot read: "
                        f"{_describe(exc, {}, MODELS[name])}") from None


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain nested dict (YAML-safe) of a config."""
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the fully resolved config (defaults included) so that a run can be reproduced."""
    write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases (`*name`). A preset of a few hundred bytes whose aliases nest
    ("billion laughs") expands, through the config's source tracking, until memory runs out;
    presets never need them, so they are refused where they appear."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in a preset",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"config preset {path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"config preset {path} is not UTF-8 text (byte {exc.start})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config preset {path} must be a mapping of sections, not {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}' must look like section.key=value")
    try:
        value = _load_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key, value


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _merge(dst: dict[str, Any], origin: dict[str, str], src: dict[str, Any], source: str, prefix: str) -> None:
    """Deep-merge `src` into `dst`, recording in `origin` the source of every key it sets.

    Every key, nested ones included, gets its own entry, and a replaced value's entries go with it,
    so a key set by the preset keeps the preset as its origin when an override later sets a sibling."""
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and isinstance(dst.get(key), dict):
            _merge(dst[key], origin, value, source, prefix=f"{dotted}.")
            continue
        dst[key] = value
        for stale in [k for k in origin if k.startswith(f"{dotted}.")]:
            del origin[stale]
        _record(origin, value, source, dotted)


def _record(origin: dict[str, str], value: Any, source: str, dotted: str) -> None:
    origin[dotted] = source
    if isinstance(value, dict):
        for key, item in value.items():
            _record(origin, item, source, f"{dotted}.{key}")


def _known_keys(dotted_parent: str, root: type) -> list[str]:
    node: Any = root
    for part in filter(None, dotted_parent.split(".")):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            return []
        node = hints[part]
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _describe(exc: pydantic.ValidationError, origin: dict[str, str], root: type) -> str:
    lines = []
    for err in exc.errors():
        dotted = ".".join(str(p) for p in err["loc"] if p != "[key]")
        source = next((origin[k] for k in _prefixes(dotted) if k in origin), "defaults")
        if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            parent, _, leaf = dotted.rpartition(".")
            close = difflib.get_close_matches(leaf, _known_keys(parent, root), n=1)
            hint = f" (did you mean '{parent + '.' if parent else ''}{close[0]}'?)" if close else ""
            lines.append(f"unknown config key '{dotted}' from {source}{hint}")
        else:
            lines.append(f"config key '{dotted}' from {source}: {err['msg']} (got {err['input']!r})")
    return "; ".join(lines)


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]

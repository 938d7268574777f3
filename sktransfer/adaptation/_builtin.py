"""The built-in adaptation methods (formulas in :mod:`sktransfer.losses`)."""

from sktransfer.adaptation._method import AdaptationMethod
from sktransfer.losses import (
    DomainDiscriminator,
    coral_loss,
    dann_loss,
    daregram_loss,
    mmd_loss,
    rsd_loss,
)


class Divergence(AdaptationMethod):
    """A method whose loss is a divergence between the feature batches.

    Subclasses set ``divergence``, a function ``(features_source,
    features_target) -> scalar tensor`` (see :mod:`sktransfer.losses`).
    """

    divergence = None

    def loss(self, features_source, features_target, modules):
        return type(self).divergence(features_source, features_target)


class SourceOnly(AdaptationMethod):
    """No adaptation: the labelled rows alone (the baseline to beat)."""

    name = "source_only"


class AdaBN(AdaptationMethod):
    """Per-domain normalisation (Li et al., "Revisiting Batch Normalization for
    Practical Domain Adaptation", 2016).

    Each domain's inputs are standardised with that domain's statistics, and
    batch-norm statistics are re-estimated on the target after training.
    """

    name = "adabn"
    per_domain_scaling = True


class DANN(AdaptationMethod):
    """Domain-adversarial training (Ganin et al., "Domain-Adversarial Training
    of Neural Networks", JMLR 2016): a discriminator behind a gradient
    reversal layer."""

    name = "dann"
    default_weight = 0.3

    def modules(self, n_features):
        return {"discriminator": DomainDiscriminator(n_features)}

    def loss(self, features_source, features_target, modules):
        return dann_loss(features_source, features_target, modules["discriminator"])


class CORAL(Divergence):
    """Deep CORAL (Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep
    Domain Adaptation", ECCV workshops 2016)."""

    name = "coral"
    default_weight = 10.0
    divergence = staticmethod(coral_loss)


class MMD(Divergence):
    """Multi-kernel MMD (Long et al., "Learning Transferable Features with Deep
    Adaptation Networks", ICML 2015)."""

    name = "mmd"
    default_weight = 0.1
    divergence = staticmethod(mmd_loss)


class RSD(Divergence):
    """Representation Subspace Distance (Chen et al., "Representation Subspace
    Distance for Domain Adaptation Regression", ICML 2021)."""

    name = "rsd"
    default_weight = 0.1
    divergence = staticmethod(rsd_loss)


class DAREGRAM(Divergence):
    """DARE-GRAM (Nejjar et al., "DARE-GRAM: Unsupervised Domain Adaptation
    Regression by Aligning Inverse Gram Matrices", WACV 2024)."""

    name = "daregram"
    default_weight = 10.0
    divergence = staticmethod(daregram_loss)


BUILTIN = (SourceOnly, AdaBN, DANN, CORAL, MMD, RSD, DAREGRAM)

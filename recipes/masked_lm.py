"""Masked-language-model recipe: a small BERT-style encoder pretrained on unlabelled texts, transferred.

    python -m recipes.masked_lm --manual_dir=aclImdb_v1.tar.gz --model_dir=runs/masked_lm
    python -m recipes.masked_lm --dataset=imdb_reviews --model_dir=runs/masked_lm    # downloads with TFDS
    python -m recipes.masked_lm --dataset=text_folder --manual_dir=my_texts --model_dir=runs/mlm-mine

Pretraining reads the texts of --train_split and of --unlabelled_split (IMDB's 50,000 unlabelled
reviews), never a label: the vocabulary is fitted on them, then the model learns to fill in masked
words (see zoo/masked_lm.py). The exported encoder takes raw strings and returns the mean of its
final states over the text's words; the MLM head is not part of it. `figures/fill_in.png` shows what
the model puts in place of a masked word in a few eval texts.

From Python or a notebook, without flags:

    from recipes import masked_lm
    metrics = masked_lm.run(masked_lm.Config(manual_dir="aclImdb", model_dir="runs/mlm", epochs=2))
"""

import dataclasses

import zoo
from recipes import figures, flow
from recipes.config import TextRecipeConfig, hyperparameter, new_default, option
from zoo.errors import ZooError

FILL_IN = (
    "this movie was [mask] and i loved it",
    "the worst [mask] i have ever seen",
    "the acting was [mask] but the plot made no sense",
    "a [mask] film with a great cast",
)


@dataclasses.dataclass
class Config(TextRecipeConfig):
    model_dir: str = new_default("model_dir", "runs/masked_lm")
    epochs: int = new_default("epochs", 10)
    batch_size: int = new_default("batch_size", 64)
    learning_rate: float = new_default("learning_rate", 5e-4)
    model: str = option(
        "masked_lm",
        "Which masked language model to build.",
        choices=tuple(zoo.list_models(family="masked_lm", include_tiny=True)),
    )
    hidden_dim: int = hyperparameter("Width of the embeddings and states, the encoder's features.", minimum=1)
    num_layers: int = hyperparameter("Transformer blocks.", minimum=1)
    num_heads: int = hyperparameter("Attention heads per block (--hidden_dim must be a multiple).", minimum=1)
    intermediate_dim: int = hyperparameter("Width of each block's MLP.", minimum=1)
    dropout: float = hyperparameter("Dropout in the blocks.", minimum=0, below=1)
    mask_rate: float = hyperparameter("Share of each text's words to predict.", positive=True, maximum=0.5)

    def validate(self):
        super().validate()
        model = zoo.get_entry(self.model).config()
        width, heads = self.hidden_dim or model["hidden_dim"], self.num_heads or model["num_heads"]
        if width % heads:
            raise ZooError(
                f"--hidden_dim={width}: must be a multiple of --num_heads={heads} (each head takes an equal share)"
            )


class MaskedLm(flow.TextRecipe):
    family = "masked_lm"
    module = "recipes.masked_lm"
    Config = Config
    features = "the mean of the final Transformer states over the text's words; the MLM head is not exported"

    def figures(self, run, model):
        super().figures(run, model)
        rows = []
        for sentence, found in zip(FILL_IN, model.fill_in(list(FILL_IN), k=5)):
            for _, words in found:
                rows.append((sentence, ", ".join(f"{w} ({p:.0%})" for w, p in words)))
        figures.text_table(
            rows, run.fig_dir + "/fill_in.png", "what the model puts in place of [mask]", ("text", "top 5 words")
        )


RECIPE = MaskedLm()


def run(config: Config) -> dict:
    """Run the whole masked-language-model recipe for `config`; returns metrics.json's content."""
    return flow.run(RECIPE, config)


if __name__ == "__main__":
    flow.cli(run, Config)

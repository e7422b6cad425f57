"""Language identification of documents (the `language` and `language_score` columns)."""
from .identify import ENGLISH, UNDETERMINED, LanguageIdentifier, bundled_model_path, detect_languages

__all__ = ["ENGLISH", "UNDETERMINED", "LanguageIdentifier", "bundled_model_path", "detect_languages"]

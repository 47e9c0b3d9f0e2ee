"""The Attribute2Image generator (paper Section 3.1): its model side, training and the artifact.

- `model.py`: the optimiser, the state shape and the image encoding shared by training and loading;
- `artifact.py`: a trained generator loaded as a renderer (no training code);
- `trainer.py`: training on the shared skeleton (train/loop.py), `train_and_evaluate`;
- `control.py`: does the generator control the attribute (sweeps measured by features/measure.py);
- `figures.py`: reconstructions, samples and attribute spectra (paper Figure 3).
"""

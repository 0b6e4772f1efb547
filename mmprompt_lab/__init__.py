"""mmprompt_lab: multi-modal prompt learning on a frozen open_clip CLIP."""
__version__ = "0.1.0"

"""What a network costs before it is trained: FLOPs, bit-ops and OPs counted with fvcore, per
architecture at a dataset's cost resolution, and the ImageNet networks that pin the convention."""

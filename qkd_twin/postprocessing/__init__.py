"""Classical post-processing of BB84: sifting, parameter estimation, error correction (Cascade),
verification (polynomial universal hash) and privacy amplification (Toeplitz hashing via FFT).

Every stage is a pure function over numpy bit arrays (``uint8`` of 0/1) with the randomness
passed in as a ``numpy.random.Generator`` so both ends of an emulated link, seeded alike,
compute identical results. ``pipeline.run_block`` chains the stages for one block.
"""

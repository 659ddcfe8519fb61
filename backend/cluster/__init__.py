"""Studio scale: one gateway speaking the protocol, jobs run by Ray Serve replicas of the engine (docs/STUDIO.md).

``replica.py`` is the Ray Serve deployment, ``engine.py`` the gateway's engine that sends jobs to it,
``scheduler.py`` and ``artists.py`` the fairness between artists, ``deploy.py`` connects to Ray.
"""

"""Install, update, repair and remove the managed local server: its own venv with torch and ``latentbrush[backend]``.

Standard library only (it runs inside Krita's and GIMP's Python). ``layout`` says where things live,
``machine`` which torch build fits this computer, ``plan`` turns an action into Steps (argv lists, no
shell), ``runner`` runs them as subprocesses for the CLI (Krita runs the same Steps with QProcess) and
``failures`` turns a failed step's log tail into plain words.
"""

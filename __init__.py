"""The checkout's root folder, not the package (that is ``chromosomenet/`` inside it).

A script that sits beside a checkout folder named ``chromosomenet`` sees this folder first on ``sys.path``;
without this file Python would import it as an empty namespace package, and every later use would fail
far from the cause (``Unknown model (chromosomenet_view_resnet10t_half)``). It says what happened instead.
"""
import os as _os

if __name__ == "chromosomenet":
    _here = _os.path.dirname(_os.path.abspath(__file__))
    raise ImportError(
        f"`import chromosomenet` found the checkout folder {_here}, not the package inside it "
        f"({_os.path.join(_here, 'chromosomenet')}): a script run next to the checkout sees the folder first. "
        f"Run the script from another folder (with the package installed: pip install -e {_here}) or from inside "
        "the checkout, or rename the checkout folder.")

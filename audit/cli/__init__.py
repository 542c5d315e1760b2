"""The `audit` command: parse, call one library function, render. No TensorFlow here."""

#!/bin/sh
# stub, being written
echo "1..0 # SKIP being written"

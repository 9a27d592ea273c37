from torchscope.cli import main

main()

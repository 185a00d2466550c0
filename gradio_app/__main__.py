from gradio_app.app import main

main()
